"""The email domain that the web tier and the mailers share. The mailer service
(`services/mailer`) keeps only consuming, the providers' senders and delivery.

- jobs.py: creating a job (recipients numbered into chunks), chunk plans, the watcher's queries
- queue.py: queue_job() and the one dispatch command / message-id rule
- job_status.py: status changes after creation, cancel, retry of failed and dead recipients
- recipients.py: RecipientSpec and the pasted recipient list of the job form
- addresses.py: the one address check
- templates.py: which template applies (company, site, built in), saving and deleting them
- template_checks.py: template checks, previews and the trial render of a new job
- config.py / config_save.py: a company's settings as read, and checking and saving them
- provider_settings.py: each provider kind's settings schema and rules (a registry)
- site.py: what only the site decides (endpoint overrides, private SMTP hosts)
- smtp_hosts.py: which SMTP hosts may be connected to
- failures.py: the fixed texts users read when a message was not sent
- monitor.py: the job monitor's queries
- callbacks.py / signing.py: the cloud worker's signed reports
"""
