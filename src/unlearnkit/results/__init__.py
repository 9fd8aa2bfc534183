"""What a bench stores and how it is read: the store's layout and the typed result records.

This package sits below both the runner (which writes results) and the report (which reads them);
it imports neither. ``store``: where each result lives; ``leaderboard``: the leaderboard and its
rows (``leaderboard.json``, schema-versioned); ``records``: a stored model's metadata; ``fields``:
the checks every record's ``from_json`` shares.
"""
