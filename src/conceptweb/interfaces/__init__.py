"""User interfaces: the `conceptweb` command line and the reports it writes."""
