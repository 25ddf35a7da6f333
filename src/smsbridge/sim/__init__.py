"""Stand-ins that speak the real wire protocols over real HTTP, for tests and `smsbridge demo`.

Nothing here imports the service: the bridge talks to these exactly as it talks to the real
provider and the real Slack Web API.
"""
