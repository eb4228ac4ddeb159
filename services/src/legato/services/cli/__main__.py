"""``python -m legato.services.cli``: the ``legato`` command."""

from legato.services.cli import main

if __name__ == "__main__":
    main()
