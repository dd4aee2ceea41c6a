"""Testing routing changes before they take all the traffic, and keeping them reversible.

policy: a routing policy as a spec string (`thompson:discount=0.99`, `fixed:small,mid`) and its strategy;
engine: the policy engine (propose, validate, apply, snapshot, roll back, history) as pure state changes;
assignment: experiments, their variants and the deterministic, stratified assignment of tasks to them;
live: a Router that routes each task by its variant's policy and tags the decision;
fixed_horizon: tests valid at one planned look (t tests, chi-square, Fisher, Cohen's d, power, Beta P(best));
sequential: always-valid inference (mSPRT p-values and confidence sequences) that survives peeking;
analysis: per-variant metrics, guardrails, SRM, futility and the decision rule;
ope: the off-policy gate, SNIPS and doubly robust estimates of a policy on logged decisions.
"""
