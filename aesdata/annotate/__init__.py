"""Human annotation in Label Studio, as a team does it: serve, onboard annotators (``team``), push samples
as tasks with overlap and gold (``push``, ``gold``), pull annotations back (``pull``), consensus and
alpha (``consensus``), annotator quality (``quality``, ``report``), disputes back to people (``review``)."""
