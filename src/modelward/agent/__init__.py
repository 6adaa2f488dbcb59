"""The endpoint agent: enrolls with a modelward server, reports the inventory, applies the policy.

Library API::

    from modelward.agent.enroll import enroll
    from modelward.agent.runner import Agent
    enroll("https://modelward.example", secret, state_dir)
    Agent(state_dir).cycle()          # collect -> policy -> enforce -> spool -> flush
"""
