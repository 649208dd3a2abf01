import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.delta.kernel.Scan;
import io.delta.kernel.Snapshot;
import io.delta.kernel.Table;
import io.delta.kernel.data.ColumnVector;
import io.delta.kernel.data.ColumnarBatch;
import io.delta.kernel.data.FilteredColumnarBatch;
import io.delta.kernel.data.Row;
import io.delta.kernel.defaults.engine.DefaultEngine;
import io.delta.kernel.engine.Engine;
import io.delta.kernel.internal.InternalScanFileUtils;
import io.delta.kernel.internal.data.ScanStateRow;
import io.delta.kernel.types.DataType;
import io.delta.kernel.types.IntegerType;
import io.delta.kernel.types.LongType;
import io.delta.kernel.types.StringType;
import io.delta.kernel.types.StructType;
import io.delta.kernel.utils.CloseableIterator;
import io.delta.kernel.utils.FileStatus;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;
import org.apache.hadoop.conf.Configuration;

/**
 * Reads a Delta table with Delta Kernel (the Delta project's reference reader, not vcam's code)
 * and prints one JSON object on stdout's last line: the snapshot version, partition columns,
 * schema, the txn version of an appId, the live files, the rows of each partition and, when a
 * column is named, how many times each of its values occurs (to count lost and doubled rows).
 *
 *   java -cp 'jars/*' DeltaCheck.java <table-uri> <appId> [id-column]
 *
 * Rows are counted by reading the data files (deletion vectors applied), not from the stats.
 */
public class DeltaCheck {
  public static void main(String[] args) throws Exception {
    if (args.length < 2) {
      System.err.println("usage: DeltaCheck <table-uri> <appId> [id-column]");
      System.exit(2);
    }
    String idColumn = args.length > 2 ? args[2] : null;
    Engine engine = DefaultEngine.create(new Configuration());
    Snapshot snapshot = Table.forPath(engine, args[0]).getLatestSnapshot(engine);
    StructType schema = snapshot.getSchema();
    List<String> partitionColumns = snapshot.getPartitionColumnNames();

    ObjectMapper json = new ObjectMapper();
    ObjectNode out = json.createObjectNode();
    out.put("version", snapshot.getVersion());
    out.set("partitionColumns", json.valueToTree(partitionColumns));
    ArrayNode fields = out.putArray("schema");
    // From the schema's own JSON (as in the log): a type is "long" for a primitive, an object for a struct, array or map.
    for (JsonNode f : json.readTree(schema.toJson()).get("fields")) {
      fields.addObject().put("name", f.get("name").asText()).<ObjectNode>set("type", f.get("type")).put("nullable", f.get("nullable").asBoolean());
    }
    Optional<Long> txn = snapshot.getLatestTransactionVersion(engine, args[1]);
    if (txn.isPresent()) out.put("txnVersion", txn.get());
    else out.putNull("txnVersion");

    int idIndex = -1;
    if (idColumn != null) {
      idIndex = schema.indexOf(idColumn);
      if (idIndex < 0) throw new IllegalArgumentException("the table has no column " + idColumn + ": " + schema.fieldNames());
    }
    Scan scan = snapshot.getScanBuilder().build();
    Row scanState = scan.getScanState(engine);
    StructType physicalSchema = ScanStateRow.getPhysicalDataReadSchema(scanState);
    long files = 0;
    long rows = 0;
    Map<String, Long> rowsPerPartition = new TreeMap<>();
    Map<String, Long> ids = new TreeMap<>();
    long idNulls = 0;
    try (CloseableIterator<FilteredColumnarBatch> scanFiles = scan.getScanFiles(engine)) {
      while (scanFiles.hasNext()) {
        try (CloseableIterator<Row> fileRows = scanFiles.next().getRows()) {
          while (fileRows.hasNext()) {
            Row scanFile = fileRows.next();
            files++;
            String partition = partitionKey(partitionColumns, InternalScanFileUtils.getPartitionValues(scanFile));
            FileStatus file = InternalScanFileUtils.getAddFileStatus(scanFile);
            CloseableIterator<ColumnarBatch> physical = engine.getParquetHandler().readParquetFiles(singleton(file), physicalSchema, Optional.empty()).map(r -> r.getData());
            try (CloseableIterator<FilteredColumnarBatch> logical = Scan.transformPhysicalData(engine, scanState, scanFile, physical)) {
              while (logical.hasNext()) {
                FilteredColumnarBatch batch = logical.next();
                ColumnarBatch data = batch.getData();
                Optional<ColumnVector> selected = batch.getSelectionVector();
                ColumnVector idVector = idIndex >= 0 ? data.getColumnVector(idIndex) : null;
                for (int i = 0; i < data.getSize(); i++) {
                  if (selected.isPresent() && (selected.get().isNullAt(i) || !selected.get().getBoolean(i))) continue;
                  rows++;
                  rowsPerPartition.merge(partition, 1L, Long::sum);
                  if (idVector == null) continue;
                  if (idVector.isNullAt(i)) idNulls++;
                  else ids.merge(valueAt(idVector, i), 1L, Long::sum);
                }
              }
            }
          }
        }
      }
    }
    out.put("files", files);
    out.put("rows", rows);
    out.set("rowsPerPartition", json.valueToTree(rowsPerPartition));
    if (idColumn != null) {
      out.set("eventIds", json.valueToTree(ids));
      out.put("idNulls", idNulls);
    }
    System.out.println(json.writeValueAsString(out));
  }

  /** The partition's value for one partition column ("" is null, as in the log); `c=v/…` for several. */
  static String partitionKey(List<String> columns, Map<String, String> values) {
    if (columns.size() == 1) return String.valueOf(values.get(columns.get(0)));
    StringBuilder key = new StringBuilder();
    for (String c : columns) key.append(key.length() > 0 ? "/" : "").append(c).append('=').append(values.get(c));
    return key.toString();
  }

  static String valueAt(ColumnVector v, int i) {
    DataType t = v.getDataType();
    if (t instanceof StringType) return v.getString(i);
    if (t instanceof LongType) return Long.toString(v.getLong(i));
    if (t instanceof IntegerType) return Integer.toString(v.getInt(i));
    throw new IllegalArgumentException("id column of type " + t + ": only string, long and integer are counted");
  }

  static <T> CloseableIterator<T> singleton(T item) {
    return io.delta.kernel.internal.util.Utils.singletonCloseableIterator(item);
  }
}
