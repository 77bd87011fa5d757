"""Moving mail accounts in and out: readers of a cPanel account backup and of a CSV file, the
CSV writer, and the process pool that hashes plaintext passwords.

Everything here is pure (files in, records out); the rules are applied by
`mailadmin.services.imports`, one transaction per domain, driven by `mailadmin.workers.importer`.
"""
