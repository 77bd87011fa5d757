"""Every rule of mailadmin, once. Services take a Session and an Actor and only flush."""
