"""Apply engine: ansible-runner driver and the module that runs on hosts."""
