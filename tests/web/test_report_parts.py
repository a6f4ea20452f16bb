"""Paging and sorting the same filters asks for the rows alone: no chart or KPI pass."""


def test_parts_rows_leaves_out_the_chart_and_kpis_but_pages_the_same(client_as):
    client = client_as("admin")
    whole = client.get("/reports/course_completion/data?page_size=2&page=2").get_json()
    rows_only = client.get("/reports/course_completion/data?page_size=2&page=2&parts=rows")
    rows_only = rows_only.get_json()
    assert whole["chart"]["series"] and whole["kpis"]
    assert (rows_only["chart"], rows_only["kpis"]) == ({}, [])
    assert rows_only["rows"] == whole["rows"]
    assert rows_only["pagination"] == whole["pagination"]


def test_choices_are_named_as_people_read_them_in_chips(client_as):
    data = client_as("admin").get("/reports/course_progress/data?band=25").get_json()
    assert {"label": "Progress band", "value": "25–49 %"} in data["filters"]
    data = client_as("admin").get("/reports/course_completion/data?days=90").get_json()
    assert {"label": "Date range", "value": "Last 90 days"} in data["filters"]
