"""Every write of the distribution app: `subscriptions` (what members and administrators do),
`dispatching` (who needs to hear about new events; the recovery sweep) and `delivering` (claim,
send, record)."""
