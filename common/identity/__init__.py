"""Identity mapping (issue 14): LMS users → Google Workspace emails.

- `csvfile` reads an uploaded file (our header or OneRoster 1.1 `users.csv`) row by row;
- `staging` checks each row and stages it in `lms_identity_import` as one batch;
- `applying` writes a clean batch into `lms_identity_map` in one transaction;
- `summary` counts mappings per source and finds one mapping;
- `resolve` turns an LMS user into the email roster sync uses.
"""
