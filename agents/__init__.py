"""Agents: Dreamer actor-critic, SB3 in imagination, MPC planners, evaluation on real envs."""
