"""legato.services: how people use Legato.

The legato command, Ray job submission, the online service and the HTML gallery.

This member holds only its skeleton so far: the code arrives with its issue (see the repository README).
"""

__all__: list[str] = []
