"""Task stores: where durable background tasks live between commit and ack."""
