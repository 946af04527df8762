"""Distribution: webhook subscriptions as cursors on the feed, pushed with Standard Webhooks
signatures, retried for days, with incident events on a priority lane (see services/)."""
