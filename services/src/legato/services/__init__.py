"""legato.services: how people use Legato. It holds no model logic: it parses requests, calls
`legato.pipelines`, and writes outputs.

The main flow::

    legato generate music "a jig on fiddle" --seed 1            # legato.services.cli: the `legato` command
    legato job submit job.yaml --address http://HOST:8265 --wait   # job specs as Ray jobs
    legato serve                                                # legato.services.serve: the online service

Importing this package imports nothing heavy; each subpackage loads the pipelines when it runs.
"""

__all__: list[str] = []
