"""The store: every record the product keeps, one repository per entity, over SQLAlchemy Core and Alembic.

    store.database   Store (engine, transactions, named locks, migrations) and its repositories:
                     store.datasets, .jobs (events, metrics, leases), .models, .evaluations (results),
                     .deployments (agent suites), .spending, .provider_files
    store.rows       the typed rows (TypedDicts) the repositories return
    store.schema     the tables
    store.status     job status words and the lease host name (no SQLAlchemy: providers import it freely)

This package's __init__ imports nothing, so that `store.status` stays free of SQLAlchemy for whoever imports it.
"""
