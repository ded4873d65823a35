"""The experiments domain: sweep candidates as partitions, and the leaderboard (issue 13)."""
