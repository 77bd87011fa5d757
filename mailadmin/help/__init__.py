"""The help centre's library side: the shipped articles, Markdown rendering and sanitising,
placeholders, highlighting and the per-backend search index names. Rules (who sees what, votes,
edits) live in `mailadmin.services.help`."""
