// Loads a .NET DataSet from its XML (schema inline) with DataSet.ReadXml, as a CasJobs client
// does with an application/x-dataset answer, and prints what .NET made of it, one line each:
//   mode <XmlReadMode>            table <name> <row count>
//   col <name> <.NET type> <DateTimeMode>
//   row <value>\t<value>...       (NULL; strings URL-escaped; numbers and times invariant)
// Used by tests/faces/test_quick_queries.py (compiled with Mono's mcs).
using System;
using System.Data;
using System.Globalization;

class ReadDataSet {
  static string Show(object v) {
    if (v == DBNull.Value) return "NULL";
    if (v is string) return "s:" + Uri.EscapeDataString((string)v);
    if (v is bool) return (bool)v ? "true" : "false";
    if (v is byte[]) return "b64:" + Convert.ToBase64String((byte[])v);
    if (v is DateTime) return ((DateTime)v).ToString("yyyy-MM-ddTHH:mm:ss.ffffff", CultureInfo.InvariantCulture);
    if (v is double) return ((double)v).ToString("R", CultureInfo.InvariantCulture);
    if (v is float) return ((float)v).ToString("R", CultureInfo.InvariantCulture);
    if (v is TimeSpan) return ((TimeSpan)v).Ticks.ToString(CultureInfo.InvariantCulture);
    return Convert.ToString(v, CultureInfo.InvariantCulture);
  }

  static void Main(string[] args) {
    var ds = new DataSet();
    Console.WriteLine("mode " + ds.ReadXml(args[0]));
    foreach (DataTable t in ds.Tables) {
      Console.WriteLine("table " + t.TableName + " " + t.Rows.Count);
      foreach (DataColumn c in t.Columns)
        Console.WriteLine("col " + Uri.EscapeDataString(c.ColumnName) + " " + c.DataType.FullName + " " + c.DateTimeMode);
      foreach (DataRow r in t.Rows) {
        var cells = new string[t.Columns.Count];
        for (int i = 0; i < cells.Length; i++) cells[i] = Show(r[i]);
        Console.WriteLine("row " + string.Join("\t", cells));
      }
    }
  }
}
