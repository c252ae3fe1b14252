"""What the runtime tells observers: task events, and the exporters that listen."""
