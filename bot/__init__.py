"""netcheck's top layer: the CLI, configuration, logging and the Slack bot."""
