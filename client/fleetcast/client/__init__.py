"""fleetcast-client: a command-line Socket.IO client speaking the public protocol."""
