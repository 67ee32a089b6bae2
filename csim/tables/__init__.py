"""The paper tables: a table spec (`spec`, conf/tables/*.yaml), the runner that trains or reuses every cell
(`runner`), the report that writes results/tables/<scale>/<table>.md|csv|png (`report`) and `csim tables` (`cli`)."""
