"""Entry point placeholder; the clients issue fills it in."""


def main() -> None:
    raise SystemExit("fleetcast-client: not built yet")
