"""Process plumbing shared by every fleetcast component (logging, list-valued settings)."""
