"""Operating a Stall: backups (`stall backup`, `stall restore`) and the /metrics endpoint.

In the top layer, beside the CLI and the URLs: both read across the domains (orders, the ledger,
payments), which no app below may.
"""
