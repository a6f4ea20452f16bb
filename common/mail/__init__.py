"""The email domain that the web tier and the mailers share: jobs (creation, queueing, status
changes), a company's offload configuration and provider settings, templates, the monitor's
queries, address checks and the cloud worker's signed callbacks.

The mailer service (`services/mailer`) keeps only what consumes and sends: chunk delivery,
the providers' senders, dispatch and the IOMAD queue watcher.
"""
