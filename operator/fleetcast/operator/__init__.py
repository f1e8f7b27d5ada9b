"""The FleetBroadcast operator: kopf handlers over a pure spec -> manifests core."""
