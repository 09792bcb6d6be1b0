// Create and edit a delivery stream. Validation is the API's: the form only checks that the
// required fields are filled, then shows CreateDeliveryStream's / UpdateDestination's error
// message exactly as the server sent it.

import { firehose } from "./api.js";
import { h, setStatus } from "./ui.js";

const DEFAULT_ROLE = "arn:aws:iam::123456789012:role/firehose";
const ADVANCED_KEYS = [
  "ProcessingConfiguration",
  "DynamicPartitioningConfiguration",
  "DataFormatConversionConfiguration",
  "S3BackupMode",
  "S3BackupConfiguration",
  "CustomTimeZone",
  "FileExtension",
];
const COMPRESSIONS = ["UNCOMPRESSED", "GZIP", "ZIP", "Snappy", "HADOOP_SNAPPY"];

function field(label, input, hint) {
  return h("label", label, input, hint ? h("small.hint", hint) : null);
}

export async function renderForm(view, name) {
  const editing = name !== null;
  let current = null;
  let s3 = {};
  if (editing) {
    current = (await firehose("DescribeDeliveryStream", { DeliveryStreamName: name })).DeliveryStreamDescription;
    const dest = (current.Destinations || [])[0] || {};
    s3 = dest.ExtendedS3DestinationDescription || dest.S3DestinationDescription || {};
  }
  const advanced = {};
  for (const k of ADVANCED_KEYS) {
    if (s3[k] !== undefined && k !== "S3BackupDescription") advanced[k] = s3[k];
  }
  if (s3.S3BackupDescription && s3.S3BackupMode === "Enabled") {
    const { BucketARN, Prefix, RoleARN } = s3.S3BackupDescription;
    advanced.S3BackupConfiguration = { BucketARN, Prefix, RoleARN };
  }
  if (advanced.S3BackupMode === "Disabled" && !advanced.S3BackupConfiguration) delete advanced.S3BackupMode;

  const hints = s3.BufferingHints || {};
  const nameInput = h("input#create-name", { name: "name", required: true, spellcheck: "false", autocomplete: "off", value: name || "", disabled: editing });
  const bucket = h("input#create-bucket", { name: "bucket", required: true, spellcheck: "false", placeholder: "arn:aws:s3:::my-bucket", value: s3.BucketARN || "" });
  const role = h("input#create-role", { name: "role", spellcheck: "false", value: s3.RoleARN || DEFAULT_ROLE });
  const prefix = h("input#create-prefix", { name: "prefix", spellcheck: "false", value: s3.Prefix || "", placeholder: "events/!{timestamp:yyyy/MM/dd}/" });
  const errorPrefix = h("input#create-error-prefix", { name: "errorPrefix", spellcheck: "false", value: s3.ErrorOutputPrefix || "", placeholder: "errors/!{firehose:error-output-type}/" });
  const size = h("input#create-size", { name: "size", type: "number", inputmode: "numeric", value: hints.SizeInMBs ?? "", placeholder: "5" });
  const interval = h("input#create-interval", { name: "interval", type: "number", inputmode: "numeric", value: hints.IntervalInSeconds ?? "", placeholder: "300" });
  const compression = h("select#create-compression", { name: "compression" },
    COMPRESSIONS.map((c) => h("option", { value: c, selected: (s3.CompressionFormat || "UNCOMPRESSED") === c }, c)));
  const json = h("textarea#create-advanced", {
    name: "advanced", rows: 10, spellcheck: "false",
    placeholder: '{"DataFormatConversionConfiguration": {...}, "DynamicPartitioningConfiguration": {...}, "ProcessingConfiguration": {...}}',
  });
  json.value = Object.keys(advanced).length ? JSON.stringify(advanced, null, 2) : "";
  const error = h("p.error#create-error", { role: "alert" });
  const submit = h("button", { type: "submit" }, editing ? "Save changes" : "Create");

  const form = h("form#create-form.stack", { autocomplete: "off", novalidate: true, "aria-describedby": "create-error" },
    h("div.grid2",
      field("Name", nameInput),
      field("Destination bucket ARN", bucket, "arn:aws:s3:::bucket (a bare bucket name works too)"),
      field("Prefix", prefix),
      field("Error output prefix", errorPrefix),
      field("Buffer size (MiB)", size),
      field("Buffer interval (s)", interval),
      field("Compression", compression),
      field("Role ARN", role)),
    field("Processing, dynamic partitioning, format conversion (JSON, optional)", json,
      "Merged into ExtendedS3DestinationConfiguration; keys such as ProcessingConfiguration, DynamicPartitioningConfiguration, DataFormatConversionConfiguration."),
    error,
    h("div.actions", submit, h("a.button.secondary", { href: editing ? `#/streams/${encodeURIComponent(name)}` : "#/streams" }, "Cancel")));

  view.append(h("section#stream-form", { "aria-labelledby": "form-title" },
    h("p.crumbs", h("a", { href: "#/streams" }, "Streams"), " / "),
    h("h2#form-title", editing ? `Edit ${name}` : "Create a delivery stream"),
    editing ? h("p.muted", `Version ${current.VersionId}; updates apply to destination ${current.Destinations?.[0]?.DestinationId}.`) : null,
    form));

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    const streamName = nameInput.value.trim();
    const missing = [];
    if (!streamName) missing.push(nameInput);
    if (!bucket.value.trim()) missing.push(bucket);
    for (const i of [nameInput, bucket]) i.setAttribute("aria-invalid", String(missing.includes(i)));
    if (missing.length) {
      error.textContent = "Name and destination bucket ARN are required.";
      missing[0].focus();
      return;
    }
    let extra = {};
    if (json.value.trim()) {
      try {
        extra = JSON.parse(json.value);
        if (!extra || typeof extra !== "object" || Array.isArray(extra)) throw new Error("expected a JSON object");
      } catch (e) {
        json.setAttribute("aria-invalid", "true");
        error.textContent = `The JSON is not valid: ${e.message}`;
        json.focus();
        return;
      }
    }
    json.setAttribute("aria-invalid", "false");
    let arn = bucket.value.trim();
    if (!arn.startsWith("arn:")) arn = `arn:aws:s3:::${arn}`;
    const config = { RoleARN: role.value.trim() || DEFAULT_ROLE, BucketARN: arn };
    if (prefix.value.trim()) config.Prefix = prefix.value.trim();
    if (errorPrefix.value.trim()) config.ErrorOutputPrefix = errorPrefix.value.trim();
    const bh = {};
    if (size.value !== "") bh.SizeInMBs = Number(size.value);
    if (interval.value !== "") bh.IntervalInSeconds = Number(interval.value);
    if (Object.keys(bh).length) config.BufferingHints = bh;
    config.CompressionFormat = compression.value;
    Object.assign(config, extra);

    submit.disabled = true;
    try {
      if (editing) {
        await firehose("UpdateDestination", {
          DeliveryStreamName: name,
          CurrentDeliveryStreamVersionId: current.VersionId,
          DestinationId: current.Destinations[0].DestinationId,
          ExtendedS3DestinationUpdate: config,
        });
        setStatus(`Updated ${name}.`);
        location.hash = `#/streams/${encodeURIComponent(name)}`;
      } else {
        await firehose("CreateDeliveryStream", {
          DeliveryStreamName: streamName,
          DeliveryStreamType: "DirectPut",
          ExtendedS3DestinationConfiguration: config,
        });
        form.reset();
        location.hash = "#/streams";
        setStatus(`Created ${streamName}.`);
      }
    } catch (e) {
      error.textContent = e.message;
    } finally {
      submit.disabled = false;
    }
  });
  (editing ? bucket : nameInput).focus();
}
