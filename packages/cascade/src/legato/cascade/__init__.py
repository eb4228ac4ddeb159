"""legato.cascade: stages and cascades.

A frozen Stage per stage, a Cascade of them plus a final decode, run by interchangeable executors.

This member holds only its skeleton so far: the code arrives with its issue (see the repository README).
"""

__all__: list[str] = []
