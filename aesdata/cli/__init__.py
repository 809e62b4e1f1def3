"""The ``aesdata`` command line: one module per noun, wired together in :mod:`aesdata.cli.main`."""
