"""``python -m lateinit``: the ``lateinit`` command line."""

if __name__ == "__main__":
    from lateinit.cli import main

    raise SystemExit(main())
