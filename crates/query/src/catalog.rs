//! The Glue catalog as DataFusion's catalog: one catalog, [`CATALOG_NAME`], whose schemas are
//! the Glue databases and whose tables are [`GlueTable`]s.
//!
//! Invariants: nothing is listed or cached up front — a table is fetched from the
//! [`CatalogStore`] (asynchronously) when a statement names it, so a statement plans against
//! the catalog's current version of each table; names are looked up lower-cased, as Glue
//! stores them. Per-statement settings reach the tables through [`StatementContext`], a
//! session config extension.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, CatalogProviderList, SchemaProvider, TableProvider};
use datafusion::error::{DataFusionError, Result as DfResult};
use lakehose_catalog::{CatalogError, CatalogStore};

use crate::FreshSource;
use crate::table::GlueTable;

/// The name of the one catalog (Athena's `AwsDataCatalog`, lower-cased like every SQL name).
pub const CATALOG_NAME: &str = "awsdatacatalog";

/// What a table scan needs to know about the statement it runs in.
#[derive(Debug, Default)]
pub(crate) struct StatementContext {
    /// The undelivered rows, when the statement includes them.
    pub fresh: Option<Arc<dyn FreshSource>>,
}

/// The catalog list: just [`CATALOG_NAME`].
#[derive(Debug)]
pub(crate) struct GlueCatalogList {
    catalog: Arc<GlueCatalog>,
}

impl GlueCatalogList {
    pub fn new(store: Arc<dyn CatalogStore>) -> Self {
        GlueCatalogList {
            catalog: Arc::new(GlueCatalog { store }),
        }
    }
}

impl CatalogProviderList for GlueCatalogList {
    fn register_catalog(
        &self,
        _name: String,
        _catalog: Arc<dyn CatalogProvider>,
    ) -> Option<Arc<dyn CatalogProvider>> {
        None
    }

    fn catalog_names(&self) -> Vec<String> {
        vec![CATALOG_NAME.to_string()]
    }

    fn catalog(&self, name: &str) -> Option<Arc<dyn CatalogProvider>> {
        name.eq_ignore_ascii_case(CATALOG_NAME)
            .then(|| Arc::clone(&self.catalog) as Arc<dyn CatalogProvider>)
    }
}

/// The Glue databases as schemas.
#[derive(Debug)]
pub(crate) struct GlueCatalog {
    store: Arc<dyn CatalogStore>,
}

impl CatalogProvider for GlueCatalog {
    fn schema_names(&self) -> Vec<String> {
        // Listing is asynchronous; `SHOW DATABASES` is answered from the store directly.
        Vec::new()
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        // Existence is checked when a table is looked up (asynchronously).
        Some(Arc::new(GlueSchema {
            database: name.to_lowercase(),
            store: Arc::clone(&self.store),
        }))
    }
}

/// One Glue database.
#[derive(Debug)]
pub(crate) struct GlueSchema {
    database: String,
    store: Arc<dyn CatalogStore>,
}

#[async_trait]
impl SchemaProvider for GlueSchema {
    fn table_names(&self) -> Vec<String> {
        Vec::new()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        match self
            .store
            .get_table(&self.database, &name.to_lowercase())
            .await
        {
            Ok(table) => {
                let t = GlueTable::try_new(&self.database, table, Arc::clone(&self.store))?;
                Ok(Some(Arc::new(t)))
            }
            Err(CatalogError::EntityNotFound(_)) => Ok(None),
            Err(e) => Err(DataFusionError::External(Box::new(
                crate::errors::from_catalog(e),
            ))),
        }
    }

    fn table_exist(&self, _name: &str) -> bool {
        false
    }
}
