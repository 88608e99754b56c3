"""A local Slack stand-in: Web API (`webapi.py`) and Socket Mode (`socketmode.py`) on 127.0.0.1.

Used by tests/bot/test_slack*.py and later by `netcheck demo`.
"""
