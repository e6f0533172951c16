"""``python -m edge.bench``: the benchmark, apart from the runtime it measures.

``__main__`` prepares the frames, runs the rows and assembles the report;
``row`` is one of our settings in a process of its own; ``loop`` the timed
loop every row (ours and the baselines') shares; ``workers`` the rounds the
rows take turns in; ``frames`` the inputs and face-count manifests;
``floor`` the CPU's measured peak and the models' MACs; ``report`` the tables
and the chart. See docs/bench.md for the method.
"""
