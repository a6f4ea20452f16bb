"""The GUI report builder: the tables a builder may offer (`schema`), the document a person
builds from them (`document`), and the SQL that document compiles to (`compile`) — SQL that
passes the same validator as a hand-written custom report and binds every value it filters on.
"""
