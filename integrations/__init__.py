"""Optional integrations of drama_wm with other libraries (installed as ``drama_wm.integrations``).

- :mod:`drama_wm.integrations.sb3`: stable-baselines3 on-policy algorithms (PPO, A2C) learning in the dream
  (``pip install drama-wm[sb3]``).

Each integration is imported explicitly by the user; the core package never imports them, so their third-party
dependencies stay optional.
"""
