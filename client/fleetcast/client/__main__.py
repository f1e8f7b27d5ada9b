"""``fleetcast-client`` entry point (declared in pyproject)."""

from fleetcast.client import cli


def main() -> None:
    raise SystemExit(cli.main())


if __name__ == "__main__":
    main()
