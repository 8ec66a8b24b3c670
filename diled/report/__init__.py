"""Reporting in one place: the table writer and the image tables (``tables``), every figure (``figures``), and the text
and protein tracks' reports (``text``, ``protein``). Workflow scripts only read their inputs and call these."""
