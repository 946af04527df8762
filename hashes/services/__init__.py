"""Every write about statements and hashes: receive, verify, publish (the pipeline), taxonomy."""
