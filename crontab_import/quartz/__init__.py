"""Quartz sources -> bridge jobs: job XML files, a live JDBC JobStore, the plugin's export.

One module per concept, from the document up:

* ``tree`` — safe, line-tracked XML reading (:class:`~crontab_import.quartz.tree.Node`, ``Issue``)
* ``schema`` — the ``job_scheduling_data`` 2.0/1.8 schema rules Quartz checks first
* ``values`` — values as Java reads them (``xs:dateTime``, ``int``/``long``)
* ``document`` — the jobs, triggers and directives a document defines
* ``schedules`` — a trigger's timing -> ScheduleSpec, its misfire instruction -> MisfirePolicy
* ``handlers`` — the handler map (TOML): which bridge handler runs each ``job-class``
* ``items`` — one trigger -> one import item; ``assemble`` — a whole source's items
* ``xml_file`` — the job XML importer (``parse_quartz_xml``, ``parse_file``)
* ``rows`` — a scheduler's definitions as its JobStore holds them; ``jobdata`` — ``JOB_DATA``
* ``jdbc`` — reading the Quartz tables (the only database access, SQLAlchemy, lazily)
* ``export`` — reading the plugin's JSON export; ``store`` — rows -> import items
"""
