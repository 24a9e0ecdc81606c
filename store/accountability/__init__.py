"""Accountability records: 包保 chains (chain.py), 约谈 (talks.py), yearly 责任书 (pledges.py)."""
