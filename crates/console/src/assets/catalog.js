// The Glue catalog browser: databases → tables → a table's columns, partition keys,
// partitions and versions.

import { glue } from "./api.js";
import { h, table, formatDate } from "./ui.js";

const enc = encodeURIComponent;
const ident = (name) => (/^[a-z_][a-z0-9_]*$/i.test(name) ? name : `\`${name.replaceAll("`", "``")}\``);

async function all(op, body, key) {
  const out = [];
  let token;
  for (let i = 0; i < 50; i++) {
    const page = await glue(op, token ? { ...body, NextToken: token } : body);
    out.push(...(page[key] || []));
    token = page.NextToken;
    if (!token) break;
  }
  return out;
}

function glueTime(v) {
  if (v === undefined || v === null) return "–";
  if (typeof v === "number") return formatDate(v < 1e11 ? v * 1000 : v);
  return formatDate(Date.parse(v));
}

export async function renderCatalog(view, db, tableName) {
  const crumbs = h("p.crumbs", h("a", { href: "#/catalog" }, "Catalog"),
    db ? [" / ", h("a", { href: `#/catalog/${enc(db)}` }, db)] : null,
    tableName ? [" / ", tableName] : null);
  const section = h("section#catalog", { "aria-labelledby": "catalog-title" }, crumbs);
  view.append(section);

  if (!db) {
    section.append(h("h2#catalog-title", "Databases"));
    const dbs = await all("GetDatabases", {}, "DatabaseList");
    section.append(dbs.length
      ? table(["Database", "Description", "Location", "Created"], dbs.map((d) => [
        h("a", { href: `#/catalog/${enc(d.Name)}` }, d.Name), d.Description || "", d.LocationUri || "", glueTime(d.CreateTime)]))
      : h("p.muted", "No databases. Create one with CREATE DATABASE in the SQL editor."));
    return;
  }

  if (!tableName) {
    section.append(h("h2#catalog-title", `Tables in ${db}`));
    const tables = await all("GetTables", { DatabaseName: db }, "TableList");
    section.append(tables.length
      ? table(["Table", "Columns", "Partition keys", "Location", "Updated"], tables.map((t) => [
        h("a", { href: `#/catalog/${enc(db)}/${enc(t.Name)}` }, t.Name),
        String(t.StorageDescriptor?.Columns?.length ?? 0),
        (t.PartitionKeys || []).map((k) => k.Name).join(", "),
        t.StorageDescriptor?.Location || "",
        glueTime(t.UpdateTime || t.CreateTime)]))
      : h("p.muted", "No tables in this database."));
    return;
  }

  section.append(h("h2#catalog-title", `${db}.${tableName}`));
  const t = (await glue("GetTable", { DatabaseName: db, Name: tableName })).Table;
  const sd = t.StorageDescriptor || {};
  const summaryBox = h("dl.summary",
    [["Location", sd.Location], ["Table type", t.TableType], ["Input format", sd.InputFormat],
      ["SerDe", sd.SerdeInfo?.SerializationLibrary], ["Version", t.VersionId], ["Created", glueTime(t.CreateTime)],
      ["Updated", glueTime(t.UpdateTime)]].map(([k, v]) => [h("dt", k), h("dd", String(v ?? "–"))]));
  const columnsBox = table(["Column", "Type", "Comment"],
    [...(sd.Columns || []).map((c) => [c.Name, h("code", c.Type), c.Comment || ""]),
      ...(t.PartitionKeys || []).map((c) => [c.Name, h("code", c.Type), `partition key${c.Comment ? ` — ${c.Comment}` : ""}`])],
    { className: "columns" });
  const partitionsBox = h("div#catalog-partitions", h("p.muted", "Loading…"));
  const versionsBox = h("div#catalog-versions", h("p.muted", "Loading…"));
  section.append(summaryBox,
    h("h3", "Columns"), columnsBox,
    h("h3", "Partitions"), partitionsBox,
    h("h3", "Versions"), versionsBox,
    h("p", h("a.button.secondary", { href: `#/sql`, on: { click: () => sessionStorage.setItem("lakehose.sql.draft", `SELECT * FROM ${ident(db)}.${ident(tableName)} LIMIT 100`) } }, "Query this table")));

  const keys = (t.PartitionKeys || []).map((k) => k.Name);
  if (!keys.length) {
    partitionsBox.replaceChildren(h("p.muted", "Not partitioned."));
  } else {
    try {
      const parts = await all("GetPartitions", { DatabaseName: db, TableName: tableName }, "Partitions");
      partitionsBox.replaceChildren(parts.length
        ? table([...keys, "Location", "Created"], parts.slice(0, 1000).map((p) => [...p.Values, p.StorageDescriptor?.Location || "", glueTime(p.CreationTime)]))
        : h("p.muted", "No partitions yet."));
    } catch (e) {
      partitionsBox.replaceChildren(h("p.error", e.message));
    }
  }
  try {
    const versions = await all("GetTableVersions", { DatabaseName: db, TableName: tableName }, "TableVersions");
    versionsBox.replaceChildren(versions.length
      ? table(["Version", "Columns", "Updated"], versions.map((v) => [v.VersionId, String(v.Table?.StorageDescriptor?.Columns?.length ?? 0), glueTime(v.Table?.UpdateTime || v.Table?.CreateTime)]))
      : h("p", `Version ${t.VersionId ?? "–"}`));
  } catch {
    versionsBox.replaceChildren(h("p", `Version ${t.VersionId ?? "–"}`));
  }
}
