"""legato.pipelines: where the domains meet.

Music and video pipelines over a cascade, text encoders, datasets, verifiers, and Ray execution.

This member holds only its skeleton so far: the code arrives with its issue (see the repository README).
"""

__all__: list[str] = []
