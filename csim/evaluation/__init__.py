"""Evaluation: STS Spearman scoring (`sts`), the training callback that scores dev sets and keeps the best weights
(`callback`), alignment and uniformity (`geometry`) and the `csim eval` command (`cli`). Tasks are read through the
registry in csim.data.tasks."""
