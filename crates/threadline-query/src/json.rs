//! Result values as JSON: numbers, strings, booleans and null as themselves; lists as arrays;
//! structs and maps as objects; timestamps, dates, decimals and the rest as their Arrow text
//! (timestamps in RFC 3339).

use datafusion::arrow::array::cast::AsArray;
use datafusion::arrow::array::types::{
    Float16Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type,
    UInt16Type, UInt32Type, UInt64Type,
};
use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use serde_json::{Map, Number, Value};

/// Row `row` of `batch`, in column order.
pub(crate) fn row(batch: &RecordBatch, row: usize) -> Vec<Value> {
    batch.columns().iter().map(|c| value(c.as_ref(), row)).collect()
}

fn float(v: f64) -> Value {
    Number::from_f64(v).map_or_else(|| Value::String(v.to_string()), Value::Number)
}

/// The value at `row` of `array`.
pub(crate) fn value(array: &dyn Array, row: usize) -> Value {
    if array.is_null(row) {
        return Value::Null;
    }
    match array.data_type() {
        DataType::Null => Value::Null,
        DataType::Boolean => Value::Bool(array.as_boolean().value(row)),
        DataType::Int8 => Value::from(array.as_primitive::<Int8Type>().value(row)),
        DataType::Int16 => Value::from(array.as_primitive::<Int16Type>().value(row)),
        DataType::Int32 => Value::from(array.as_primitive::<Int32Type>().value(row)),
        DataType::Int64 => Value::from(array.as_primitive::<Int64Type>().value(row)),
        DataType::UInt8 => Value::from(array.as_primitive::<UInt8Type>().value(row)),
        DataType::UInt16 => Value::from(array.as_primitive::<UInt16Type>().value(row)),
        DataType::UInt32 => Value::from(array.as_primitive::<UInt32Type>().value(row)),
        DataType::UInt64 => Value::from(array.as_primitive::<UInt64Type>().value(row)),
        DataType::Float16 => float(f64::from(array.as_primitive::<Float16Type>().value(row))),
        DataType::Float32 => float(f64::from(array.as_primitive::<Float32Type>().value(row))),
        DataType::Float64 => float(array.as_primitive::<Float64Type>().value(row)),
        DataType::Utf8 => Value::String(array.as_string::<i32>().value(row).to_owned()),
        DataType::LargeUtf8 => Value::String(array.as_string::<i64>().value(row).to_owned()),
        DataType::Utf8View => Value::String(array.as_string_view().value(row).to_owned()),
        DataType::List(_) => list(array.as_list::<i32>().value(row).as_ref()),
        DataType::LargeList(_) => list(array.as_list::<i64>().value(row).as_ref()),
        DataType::FixedSizeList(_, _) => list(array.as_fixed_size_list().value(row).as_ref()),
        DataType::Struct(fields) => {
            let s = array.as_struct();
            Value::Object(
                fields
                    .iter()
                    .zip(s.columns())
                    .map(|(f, c)| (f.name().clone(), value(c.as_ref(), row)))
                    .collect(),
            )
        }
        DataType::Map(_, _) => {
            let entries = array.as_map().value(row);
            let (keys, values) = (entries.column(0), entries.column(1));
            let mut object = Map::new();
            for i in 0..entries.len() {
                let key = match value(keys.as_ref(), i) {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                object.insert(key, value(values.as_ref(), i));
            }
            Value::Object(object)
        }
        DataType::Dictionary(_, _) => {
            let dict = array.as_any_dictionary();
            let key = dict.normalized_keys()[row];
            value(dict.values().as_ref(), key)
        }
        _ => text(array, row),
    }
}

fn list(items: &dyn Array) -> Value {
    Value::Array((0..items.len()).map(|i| value(items, i)).collect())
}

fn text(array: &dyn Array, row: usize) -> Value {
    let options = FormatOptions::default().with_display_error(true);
    match ArrayFormatter::try_new(array, &options) {
        Ok(formatter) => Value::String(formatter.value(row).to_string()),
        Err(e) => Value::String(format!("<{e}>")),
    }
}
