# Indexes for the shopper's reads at scale (issue #16, docs/PERFORMANCE.md "Reads at scale"):
# - order_user_created_id (user, -created_at, -id) replaces order_user_created: the list's
#   exact order, so a page's ids come from the index alone (orders.views.IdsFirstPaginator);
# - product_on_sale (id) WHERE active: the catalogue's count and pages without a table scan.
#
# On PostgreSQL the indexes are built and dropped CONCURRENTLY, so that deploying this on a
# large orders table does not block orders while it builds (2 s at 10^6 orders on the
# bench machine); the new index exists before the old one goes. Elsewhere (SQLite) plainly.

from django.contrib.postgres.operations import AddIndexConcurrently, RemoveIndexConcurrently
from django.db import migrations, models


def _postgres(schema_editor) -> bool:
    return schema_editor.connection.vendor == "postgresql"


class AddIndexQuietly(AddIndexConcurrently):
    """CONCURRENTLY on PostgreSQL, a plain AddIndex elsewhere (the next class in the MRO
    after AddIndexConcurrently's own is AddIndex)."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        base = super() if _postgres(schema_editor) else super(AddIndexConcurrently, self)
        base.database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        base = super() if _postgres(schema_editor) else super(AddIndexConcurrently, self)
        base.database_backwards(app_label, schema_editor, from_state, to_state)


class RemoveIndexQuietly(RemoveIndexConcurrently):
    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        base = super() if _postgres(schema_editor) else super(RemoveIndexConcurrently, self)
        base.database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        base = super() if _postgres(schema_editor) else super(RemoveIndexConcurrently, self)
        base.database_backwards(app_label, schema_editor, from_state, to_state)


class Migration(migrations.Migration):
    atomic = False  # CREATE/DROP INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [
        ("orders", "0010_pay_version"),
    ]

    operations = [
        AddIndexQuietly(
            model_name="order",
            index=models.Index(fields=["user", "-created_at", "-id"], name="order_user_created_id"),
        ),
        RemoveIndexQuietly(
            model_name="order",
            name="order_user_created",
        ),
        AddIndexQuietly(
            model_name="product",
            index=models.Index(
                condition=models.Q(("active", True)), fields=["id"], name="product_on_sale"
            ),
        ),
    ]
