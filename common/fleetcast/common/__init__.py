"""Process plumbing shared by every fleetcast component (logging, run loop)."""
