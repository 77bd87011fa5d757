"""Lab tools: a private Dovecot + Postfix sandbox on loopback high ports, and a Debian 13 chroot
with Dovecot 2.4. Tests, benchmarks and `mailadmin sandbox` use them; nothing here runs in
production.
"""
