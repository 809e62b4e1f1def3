"""``aesdata report``: a static HTML picture of a workspace's dataset, its annotators and its models.

Modules: ``collect`` (what is shown, read from the workspace and eval report files; annotator quality is
the annotation stage's own report), ``svg`` (the charts), ``page`` (the HTML), ``build`` (thumbnails and
the folder, written whole).
"""
