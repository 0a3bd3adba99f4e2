"""The agent and its lifecycle: going online, staying registered, stopping, health."""
