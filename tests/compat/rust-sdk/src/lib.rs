//! Empty: the test lives in tests/.
