"""`netcheck demo`: the whole product on one machine — lab up, `/netcheck NODE` (the layout's
WiFi node) through the real
Slack bot (against the Slack stand-in), an approver's click on "Apply fix", the re-check, teardown.

Modules: options (what the user asked for), harness (Slack stand-in + the bot from a factory that
bot/commands/demo.py passes in + driver, in the ops namespace), render (the Slack conversation as
terminal text), feed (prints it as it happens), flow (the steps, signals and teardown).
Called by bot/commands/demo.py.
"""
