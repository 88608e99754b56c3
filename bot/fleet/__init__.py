"""The fleet: every node's last check and verdict (state.py), their causes (causes.py), the series
on /metrics (metrics.py) and the bound on checks running at once (slots.py). Shared by the Slack
commands, node-join checks, the watch (bot/watch) and the App Home tab (bot/slack/home.py).
"""
